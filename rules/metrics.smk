rule barrier_curves:
    input:
        a=lambda wc: [posterior_file(wc.variant, wc.method, a) for a, _ in seed_pairs(config, wc.method)],
        b=barrier_endpoints_b,
        data=data_file,
    output:
        P.curves(RESULTS, "{variant}", "{method}", "{alignment}"),
    log:
        P.log(RESULTS, "{variant}/barrier/{method}/{alignment}"),
    benchmark:
        P.benchmark(RESULTS, "barrier_curves", "{variant}/barrier/{method}/{alignment}")
    conda:
        ENV
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("barrier_curves", mem_mb=4000, runtime=60),
    params:
        cfg=job_config("barrier"),
        runtime=job_runtime,
        # every pair of the method: one job (torch and the data set up once), a curve per pair
        pairs=lambda wc, input: json.dumps(
            [[a, b, pa, pb] for (a, b), pa, pb in zip(seed_pairs(config, wc.method), input.a, input.b)]
        ),
    shell:
        "python -m workflow barriers --alignment {wildcards.alignment} --variant {wildcards.variant}"
        " --pairs {params.pairs:q} --data {input.data:q}"
        " --config {params.cfg:q} --runtime {params.runtime:q} --threads {threads} --gpus {resources.gpu}"
        " --out {output:q} > {log:q} 2>&1"


rule barrier_within_chain:
    # the control rows of sample-set barriers: the two halves of each chain, paired by index like the pairs,
    # as they are and weight-matched
    input:
        posteriors=lambda wc: posterior_files(wc.variant, wc.method),
        data=data_file,
    output:
        P.curves(RESULTS, "{variant}", "{method}", "within_chain"),
    log:
        P.log(RESULTS, "{variant}/barrier/{method}/within_chain"),
    benchmark:
        P.benchmark(RESULTS, "barrier_within_chain", "{variant}/barrier/{method}/within_chain")
    conda:
        ENV
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("barrier_within_chain", mem_mb=4000, runtime=60),
    params:
        # alignment: the second half of each chain is also weight-matched to the first, as align_pair does
        cfg=job_config("barrier", "alignment"),
        runtime=job_runtime,
        seeds=lambda wc: " ".join(str(s) for s in seeds_of(wc.method)),
    shell:
        "python -m workflow barriers-within-chain --variant {wildcards.variant} --posteriors {input.posteriors:q}"
        " --seeds {params.seeds} --data {input.data:q} --config {params.cfg:q} --runtime {params.runtime:q}"
        " --threads {threads} --gpus {resources.gpu} --out {output:q} > {log:q} 2>&1"


rule summarize_barriers:
    input:
        curve_files(),
    output:
        curves=P.table(RESULTS, "barrier_curves"),
        table=P.table(RESULTS, "barriers"),
        markdown=P.table(RESULTS, "barriers", "md"),
    log:
        P.log(RESULTS, "summarize_barriers"),
    benchmark:
        P.benchmark(RESULTS, "summarize_barriers", "summarize_barriers")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("summarize_barriers", mem_mb=2000, runtime=10),
    params:
        variants=json.dumps(SWEEP["variants"], sort_keys=True),
    shell:
        "python -m workflow summarize-barriers --curves {input:q} --variants {params.variants:q}"
        " --out-curves {output.curves:q} --out-csv {output.table:q} --out-md {output.markdown:q} > {log:q} 2>&1"


rule barriers:
    input:
        barrier_tables(),
