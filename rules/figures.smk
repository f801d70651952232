localrules:
    figure_barriers,
    figures,
    summarize_barriers,
    barriers,
    tables,
    posteriors,
    alignments,


rule figure_barriers:
    input:
        rules.summarize_barriers.output.curves,
    output:
        png=report(
            f"{RESULTS}/figures/barrier_{{method}}.png",
            caption="../report/barrier_curves.rst",
            category="Barriers",
            labels={"method": "{method}", "figure": "loss and error along the path"},
        ),
        pdf=f"{RESULTS}/figures/barrier_{{method}}.pdf",
    log:
        f"{LOGS}/figure_barriers/{{method}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "python -m workflow figure-barriers --curves {input:q} --method {wildcards.method}"
        " --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"


rule figures:
    input:
        expand(f"{RESULTS}/figures/barrier_{{method}}.{{ext}}", method=METHODS, ext=["png", "pdf"]),
