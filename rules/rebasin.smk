rule rebasin:
    input:
        posteriors=lambda wc: posterior_files(wc.variant, wc.method),
        data=data_file,
    output:
        q_d=P.rebasin(RESULTS, "{variant}", "{method}", "{matching}", "{reference}", "q_d"),
        q_r=P.rebasin(RESULTS, "{variant}", "{method}", "{matching}", "{reference}", "q_r"),
        draws=P.rebasin(RESULTS, "{variant}", "{method}", "{matching}", "{reference}", "draws"),
    log:
        P.log(RESULTS, "{variant}/rebasin/{method}/{matching}/{reference}"),
    benchmark:
        P.benchmark(RESULTS, "rebasin", "{variant}/rebasin/{method}/{matching}/{reference}")
    conda:
        ENV
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("rebasin", mem_mb=8000, runtime=120),  # matching runs on the CPU
    params:
        cfg=job_config("rebasin"),
        runtime=job_runtime,
        seeds=lambda wc: " ".join(str(s) for s in seeds_of(wc.method)),
    shell:
        "python -m workflow rebasin --method {wildcards.method} --matching {wildcards.matching}"
        " --reference {wildcards.reference} --posteriors {input.posteriors:q} --seeds {params.seeds} --data {input.data:q}"
        " --config {params.cfg:q} --runtime {params.runtime:q} --threads {threads}"
        " --out-qd {output.q_d:q} --out-qr {output.q_r:q} --out-draws {output.draws:q} > {log:q} 2>&1"


rule rebasin_draws:
    # the rebasin control: did matching permute draws of one chain (one mode) differently?
    input:
        lambda wc: rebasin_draw_files(wc.variant),
    output:
        csv=P.table(RESULTS, "rebasin_draws_{variant}"),
        md=P.table(RESULTS, "rebasin_draws_{variant}", "md"),
    log:
        P.log(RESULTS, "{variant}/rebasin_draws"),
    benchmark:
        P.benchmark(RESULTS, "rebasin_draws", "{variant}/rebasin_draws")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("rebasin_draws", mem_mb=2000, runtime=10),
    shell:
        "python -m workflow summarize-rebasin-draws --draws {input:q} --variant {wildcards.variant}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


rule table1:
    input:
        posteriors=lambda wc: [p for m in METHODS for p in posterior_files(wc.variant, m)],
        rebasin=lambda wc: list(rebasin_files(wc.variant).values()),
        data=data_file,
    output:
        csv=P.table(RESULTS, "table1_{variant}"),
        md=P.table(RESULTS, "table1_{variant}", "md"),
        tex=P.table(RESULTS, "table1_{variant}", "tex"),
        diagnostics=P.table(RESULTS, "chain_diagnostics_{variant}"),
        replicates=P.replicates(RESULTS, "{variant}"),
    log:
        P.log(RESULTS, "{variant}/table1"),
    benchmark:
        P.benchmark(RESULTS, "table1", "{variant}/table1")
    conda:
        ENV
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("table1", mem_mb=8000, runtime=60),
    params:
        cfg=job_config("table"),
        runtime=job_runtime,
        posteriors=lambda wc: json.dumps({m: posterior_files(wc.variant, m) for m in METHODS}),
        rebasin=lambda wc: json.dumps(rebasin_files(wc.variant), sort_keys=True),
    shell:
        "python -m workflow table1 --posteriors {params.posteriors:q} --rebasin {params.rebasin:q} --data {input.data:q}"
        " --config {params.cfg:q} --runtime {params.runtime:q} --threads {threads} --gpus {resources.gpu} --out-csv {output.csv:q}"
        " --out-md {output.md:q} --out-tex {output.tex:q} --out-diagnostics {output.diagnostics:q}"
        " --out-replicates {output.replicates:q} > {log:q} 2>&1"
