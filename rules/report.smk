# The report (`snakemake --report`): every summary table as an HTML table, with captions that state
# the settings, seeds and pairs behind it; and the `paper` target, which redraws every figure and
# table of both papers from the summary tables alone (no posterior read, nothing retrained).


localrules:
    report_table,
    paper,
    claims,


wildcard_constraints:
    table=r"[A-Za-z0-9_.\-]+",


rule report_table:
    input:
        P.table(RESULTS, "{table}"),
    output:
        report(
            P.report(RESULTS, "{table}"),
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
    log:
        P.log(RESULTS, "report/{table}"),
    benchmark:
        P.benchmark(RESULTS, "report_table", "report/{table}")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("report_table", mem_mb=1000, runtime=10),
    params:
        title=lambda wc: table_item(wc.table, VARIANTS)[1],
        # derived (takes threads): a caption's wording never reruns a job
        caption=lambda wc, threads: table_caption(wc.table),
    shell:
        "python -m workflow table-html --table {input:q} --title {params.title:q} --caption {params.caption:q}"
        " --out {output:q} > {log:q} 2>&1"


rule paper:
    input:
        summary_tables(),
    output:
        directory(P.paper(RESULTS)),
    log:
        P.log(RESULTS, "paper"),
    benchmark:
        P.benchmark(RESULTS, "paper", "paper")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("paper", mem_mb=2000, runtime=30),
    params:
        base=json.dumps(SWEEP["base"] if len(VARIANTS) > 1 else {}, sort_keys=True),
        captions=lambda wc, threads: json.dumps({Path(t).name: table_caption(Path(t).stem) for t in summary_tables()}),
    shell:
        "python -m workflow paper --tables {input:q} --sweep-base {params.base:q} --captions {params.captions:q}"
        " --out {output:q} > {log:q} 2>&1"


rule claims:
    # every claim of both papers judged against this run's summary tables, with its control
    input:
        summary_tables(),
        replicate_tables(),
    output:
        csv=P.claims(RESULTS, "csv"),
        md=P.claims(RESULTS, "md"),
    log:
        P.log(RESULTS, "claims"),
    benchmark:
        P.benchmark(RESULTS, "claims", "claims")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("claims", mem_mb=2000, runtime=10),
    params:
        run_config=json.dumps(result_config(config, ["data", "model", "prior", "methods", "rebasin"]), sort_keys=True),
        variants=json.dumps(SWEEP["variants"], sort_keys=True),
        sweep_base=json.dumps(SWEEP["base"], sort_keys=True),
    shell:
        "python -m workflow claims --tables {input:q} --run-config {params.run_config:q} --variants {params.variants:q}"
        " --sweep-base {params.sweep_base:q}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"
