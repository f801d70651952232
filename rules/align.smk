rule align_pair:
    input:
        a=f"{V}/posteriors/{{method}}/seed{{a}}.h5",
        b=f"{V}/posteriors/{{method}}/seed{{b}}.h5",
    output:
        f"{V}/alignment/{{method}}/{{kind}}/{{a}}-{{b}}.h5",
    log:
        f"{LOGS}/{{variant}}/align/{{method}}/{{kind}}/{{a}}-{{b}}.log",
    benchmark:
        f"{BENCHMARKS}/align_pair/{{variant}}/align/{{method}}/{{kind}}/{{a}}-{{b}}.tsv",
    params:
        cfg=job_config("alignment"),
        runtime=job_runtime,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    shell:
        "python -m workflow align --kind {wildcards.kind} --seeds {wildcards.a} {wildcards.b} --a {input.a:q} --b {input.b:q} --config {params.cfg:q} --runtime {params.runtime:q}"
        " --out {output:q} > {log:q} 2>&1"


rule alignments:
    input:
        alignment_files(),
