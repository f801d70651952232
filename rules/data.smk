rule prepare_data:
    output:
        f"{RESULTS}/data/dataset.npz",
    log:
        f"{LOGS}/prepare_data.log",
    params:
        cfg=job_config("data"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "python -m workflow prepare-data --config {params.cfg:q} --out {output:q} > {log:q} 2>&1"
