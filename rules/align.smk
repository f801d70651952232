rule align_pair:
    input:
        a=f"{RESULTS}/posteriors/{{method}}/seed{{a}}.h5",
        b=f"{RESULTS}/posteriors/{{method}}/seed{{b}}.h5",
    output:
        f"{RESULTS}/alignment/{{method}}/{{kind}}/{{a}}-{{b}}.h5",
    log:
        f"{LOGS}/align/{{method}}/{{kind}}/{{a}}-{{b}}.log",
    params:
        cfg=job_config("alignment"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    shell:
        "python -m workflow align --kind {wildcards.kind} --a {input.a:q} --b {input.b:q} --config {params.cfg:q}"
        " --out {output:q} > {log:q} 2>&1"


rule alignments:
    input:
        expand(f"{RESULTS}/alignment/{{method}}/{{kind}}/{{pair}}.h5", method=METHODS, kind=ALIGNMENTS, pair=PAIRS),
