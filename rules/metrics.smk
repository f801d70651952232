rule barrier_curve:
    input:
        a=f"{RESULTS}/posteriors/{{method}}/seed{{a}}.h5",
        b=barrier_endpoint_b,
        data=rules.prepare_data.output[0],
    output:
        f"{RESULTS}/barriers/{{method}}/{{alignment}}/{{a}}-{{b}}.csv",
    log:
        f"{LOGS}/barrier/{{method}}/{{alignment}}/{{a}}-{{b}}.log",
    params:
        cfg=job_config("barrier", "compute"),
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources(mem_mb=4000, runtime=60),
    conda:
        ENV
    shell:
        "python -m workflow barrier --alignment {wildcards.alignment} --a {input.a:q} --b {input.b:q} --data {input.data:q}"
        " --config {params.cfg:q} --threads {threads} --out {output:q} > {log:q} 2>&1"


rule summarize_barriers:
    input:
        curves=expand(
            f"{RESULTS}/barriers/{{method}}/{{alignment}}/{{pair}}.csv",
            method=METHODS,
            alignment=["naive", *ALIGNMENTS],
            pair=PAIRS,
        ),
        alignments=rules.alignments.input,
    output:
        curves=f"{RESULTS}/tables/barrier_curves.csv",
        table=f"{RESULTS}/tables/barriers.csv",
        markdown=f"{RESULTS}/tables/barriers.md",
    log:
        f"{LOGS}/summarize_barriers.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "python -m workflow summarize-barriers --curves {input.curves:q} --alignments {input.alignments:q}"
        " --out-curves {output.curves:q} --out-csv {output.table:q} --out-md {output.markdown:q} > {log:q} 2>&1"


rule barriers:
    input:
        rules.summarize_barriers.output,


rule tables:
    input:
        rules.summarize_barriers.output,
