localrules:
    figure_barriers,
    figure_sweep,
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
            P.figure(RESULTS, "barrier_{method}_{variant}", "png"),
            caption="../report/barrier_curves.rst",
            category="Barrier curves",
            labels={"method": "{method}", "variant": "{variant}"},
        ),
        pdf=P.figure(RESULTS, "barrier_{method}_{variant}", "pdf"),
    log:
        P.log(RESULTS, "figures/barrier_{method}_{variant}"),
    benchmark:
        P.benchmark(RESULTS, "figure_barriers", "figures/barrier_{method}_{variant}")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("figure_barriers", mem_mb=2000, runtime=10),
    params:
        # derived (takes threads): a caption's wording never reruns a job
        caption=lambda wc, threads: caption_text(
            "barrier", variant_config(wc.variant), method=wc.method, variant=wc.variant
        ),
    shell:
        "python -m workflow figure-barriers --curves {input:q} --method {wildcards.method}"
        " --variant {wildcards.variant} --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"


rule figure_sweep:
    input:
        rules.summarize_barriers.output.table,
    output:
        png=report(
            P.figure(RESULTS, "sweep_{method}", "png"),
            caption="../report/barrier_sweep.rst",
            category="Barriers against swept settings",
            labels={"method": "{method}"},
        ),
        pdf=P.figure(RESULTS, "sweep_{method}", "pdf"),
    log:
        P.log(RESULTS, "figures/sweep_{method}"),
    benchmark:
        P.benchmark(RESULTS, "figure_sweep", "figures/sweep_{method}")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("figure_sweep", mem_mb=2000, runtime=10),
    params:
        base=json.dumps(SWEEP["base"], sort_keys=True),
        caption=lambda wc, threads: caption_text("sweep", config, method=wc.method, swept=swept_values()),
    shell:
        "python -m workflow figure-sweep --table {input:q} --method {wildcards.method} --base {params.base:q}"
        " --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"


rule figures:
    input:
        figure_files(),
        [f for f in study_files() if "/figures/" in f],
