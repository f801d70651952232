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
        f"{RESULTS}/tables/{{table}}.csv",
    output:
        report(
            f"{RESULTS}/report/{{table}}.html",
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
    log:
        f"{LOGS}/report/{{table}}.log",
    benchmark:
        f"{BENCHMARKS}/report_table/report/{{table}}.tsv",
    params:
        title=lambda wc: table_item(wc.table, VARIANTS)[1],
        # derived (takes threads): a caption's wording never reruns a job
        caption=lambda wc, threads: table_caption(wc.table),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "python -m workflow table-html --table {input:q} --title {params.title:q} --caption {params.caption:q}"
        " --out {output:q} > {log:q} 2>&1"


rule paper:
    input:
        summary_tables(),
    output:
        directory(f"{RESULTS}/paper"),
    log:
        f"{LOGS}/paper.log",
    benchmark:
        f"{BENCHMARKS}/paper/paper.tsv",
    params:
        base=json.dumps(sweep_table(config, VARIANTS)["base"] if len(VARIANTS) > 1 else {}, sort_keys=True),
        captions=lambda wc, threads: json.dumps({Path(t).name: table_caption(Path(t).stem) for t in summary_tables()}),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "python -m workflow paper --tables {input:q} --sweep-base {params.base:q} --captions {params.captions:q}"
        " --out {output:q} > {log:q} 2>&1"


rule claims:
    # every claim of both papers judged against this run's summary tables, with its control
    input:
        summary_tables(),
    output:
        csv=f"{RESULTS}/claims.csv",
        md=f"{RESULTS}/claims.md",
    log:
        f"{LOGS}/claims.log",
    benchmark:
        f"{BENCHMARKS}/claims/claims.tsv",
    params:
        run_config=json.dumps(result_config(config, ["data", "model", "prior", "methods", "rebasin"]), sort_keys=True),
        variants=json.dumps(sweep_table(config, VARIANTS)["variants"], sort_keys=True),
        sweep_base=json.dumps(sweep_table(config, VARIANTS)["base"], sort_keys=True),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "python -m workflow claims --tables {input:q} --run-config {params.run_config:q} --variants {params.variants:q}"
        " --sweep-base {params.sweep_base:q}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"
