rule prepare_data:
    output:
        P.data(RESULTS, "{datakey}"),
    log:
        P.log(RESULTS, "prepare_data/{datakey}"),
    benchmark:
        P.benchmark(RESULTS, "prepare_data", "prepare_data/{datakey}")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("prepare_data", mem_mb=4000, runtime=30),
    params:
        cfg=lambda wc: json.dumps(result_config(DATA_CONFIGS[wc.datakey], ["data"]), sort_keys=True),
        runtime=job_runtime,
    shell:
        "python -m workflow prepare-data --config {params.cfg:q} --runtime {params.runtime:q} --out {output:q} > {log:q} 2>&1"
