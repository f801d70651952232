rule rebasin:
    input:
        posteriors=lambda wc: posterior_files(wc.variant, wc.method),
        data=data_file,
    output:
        q_d=f"{V}/rebasin/{{method}}/{{matching}}/{{reference}}/q_d.h5",
        q_r=f"{V}/rebasin/{{method}}/{{matching}}/{{reference}}/q_r.h5",
        draws=f"{V}/rebasin/{{method}}/{{matching}}/{{reference}}/draws.csv",
    log:
        f"{LOGS}/{{variant}}/rebasin/{{method}}/{{matching}}/{{reference}}.log",
    benchmark:
        f"{BENCHMARKS}/rebasin/{{variant}}/rebasin/{{method}}/{{matching}}/{{reference}}.tsv",
    params:
        cfg=job_config("rebasin"),
        runtime=job_runtime,
        seeds=lambda wc: " ".join(str(s) for s in seeds_of(wc.method)),
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("rebasin", mem_mb=8000, runtime=120),  # matching runs on the CPU
    conda:
        ENV
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
        csv=f"{RESULTS}/tables/rebasin_draws_{{variant}}.csv",
        md=f"{RESULTS}/tables/rebasin_draws_{{variant}}.md",
    log:
        f"{LOGS}/{{variant}}/rebasin_draws.log",
    benchmark:
        f"{BENCHMARKS}/rebasin_draws/{{variant}}/rebasin_draws.tsv",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "python -m workflow summarize-rebasin-draws --draws {input:q} --variant {wildcards.variant}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


rule table1:
    input:
        posteriors=lambda wc: [p for m in METHODS for p in posterior_files(wc.variant, m)],
        rebasin=lambda wc: list(rebasin_files(wc.variant).values()),
        data=data_file,
    output:
        csv=f"{RESULTS}/tables/table1_{{variant}}.csv",
        md=f"{RESULTS}/tables/table1_{{variant}}.md",
        tex=f"{RESULTS}/tables/table1_{{variant}}.tex",
        diagnostics=f"{RESULTS}/tables/chain_diagnostics_{{variant}}.csv",
    log:
        f"{LOGS}/{{variant}}/table1.log",
    benchmark:
        f"{BENCHMARKS}/table1/{{variant}}/table1.tsv",
    params:
        cfg=job_config("table"),
        runtime=job_runtime,
        posteriors=lambda wc: json.dumps({m: posterior_files(wc.variant, m) for m in METHODS}),
        rebasin=lambda wc: json.dumps(rebasin_files(wc.variant), sort_keys=True),
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("table1", mem_mb=8000, runtime=60),
    conda:
        ENV
    shell:
        "python -m workflow table1 --posteriors {params.posteriors:q} --rebasin {params.rebasin:q} --data {input.data:q}"
        " --config {params.cfg:q} --runtime {params.runtime:q} --threads {threads} --gpus {resources.gpu} --out-csv {output.csv:q}"
        " --out-md {output.md:q} --out-tex {output.tex:q} --out-diagnostics {output.diagnostics:q} > {log:q} 2>&1"
