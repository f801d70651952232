rule align_pair:
    input:
        a=P.posterior(RESULTS, "{variant}", "{method}", "{a}"),
        b=P.posterior(RESULTS, "{variant}", "{method}", "{b}"),
    output:
        P.alignment(RESULTS, "{variant}", "{method}", "{kind}", "{a}-{b}"),
    log:
        P.log(RESULTS, "{variant}/align/{method}/{kind}/{a}-{b}"),
    benchmark:
        P.benchmark(RESULTS, "align_pair", "{variant}/align/{method}/{kind}/{a}-{b}")
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        cfg=job_config("alignment"),
        runtime=job_runtime,
    shell:
        "python -m workflow align --kind {wildcards.kind} --seeds {wildcards.a} {wildcards.b} --a {input.a:q} --b {input.b:q} --config {params.cfg:q} --runtime {params.runtime:q}"
        " --out {output:q} > {log:q} 2>&1"


rule alignments:
    input:
        alignment_files(),
