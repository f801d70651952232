# Weight-space studies of Xiao et al.: other methods in the reference method's (HMC's) basin, sigma
# histograms, pruning by sigma, and the number-of-transpositions (NoT) studies. Figures read only
# the small tables. Helpers: rules/common_studies.smk.
localrules:
    sigma_histograms,
    summarize_not_k,
    summarize_not_path,
    figure_study,
    studies,


rule basin:
    input:
        reference=lambda wc: reference_qr(wc.variant),
        sources=lambda wc: list(basin_sources(wc.variant).values()),
    output:
        table=P.table(RESULTS, "basin_{variant}"),
        alignments=[P.basin(RESULTS, "{variant}", label) for label in BASIN_LABELS],
    log:
        P.log(RESULTS, "{variant}/basin"),
    benchmark:
        P.benchmark(RESULTS, "basin", "{variant}/basin")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("basin", mem_mb=4000, runtime=60),
    params:
        cfg=job_config("alignment"),
        sources=lambda wc: json.dumps(basin_sources(wc.variant)),
        outs=lambda wc: json.dumps(basin_outputs(wc.variant)),
    shell:
        "python -m workflow basin --reference {input.reference:q} --sources {params.sources:q} --outs {params.outs:q}"
        " --variant {wildcards.variant} --config {params.cfg:q} --out-csv {output.table:q} > {log:q} 2>&1"


rule sigma_histograms:
    input:
        rebasin=lambda wc: list(rebasin_files(wc.variant).values()),
        gaussians=lambda wc: [p for paths in gaussian_files(wc.variant).values() for p in paths],
    output:
        P.table(RESULTS, "sigma_{variant}"),
    log:
        P.log(RESULTS, "{variant}/sigma_histograms"),
    benchmark:
        P.benchmark(RESULTS, "sigma_histograms", "{variant}/sigma_histograms")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("sigma_histograms", mem_mb=2000, runtime=10),
    params:
        rebasin=lambda wc: json.dumps(rebasin_files(wc.variant), sort_keys=True),
        gaussians=lambda wc: json.dumps(gaussian_files(wc.variant)),
    shell:
        "python -m workflow sigma-histograms --rebasin {params.rebasin:q} --gaussians {params.gaussians:q} --variant {wildcards.variant}"
        " --out-csv {output:q} > {log:q} 2>&1"


rule pruning:
    input:
        rebasin=lambda wc: list(rebasin_files(wc.variant).values()),
        gaussians=lambda wc: [paths[0] for paths in gaussian_files(wc.variant).values()],
        merged=lambda wc: [p for pair in pruning_merged(wc.variant) for p in pair],
        data=data_file,
    output:
        P.table(RESULTS, "pruning_{variant}"),
    log:
        P.log(RESULTS, "{variant}/pruning"),
    benchmark:
        P.benchmark(RESULTS, "pruning", "{variant}/pruning")
    conda:
        ENV
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("pruning", mem_mb=4000, runtime=30),
    params:
        cfg=job_config("pruning"),
        runtime=job_runtime,
        rebasin=lambda wc: json.dumps(rebasin_files(wc.variant), sort_keys=True),
        gaussians=lambda wc: json.dumps({m: paths[0] for m, paths in gaussian_files(wc.variant).items()}),
        merged=lambda wc: json.dumps(pruning_merged(wc.variant)),
    shell:
        "python -m workflow pruning --rebasin {params.rebasin:q} --gaussians {params.gaussians:q} --merged {params.merged:q}"
        " --data {input.data:q} --variant {wildcards.variant} --config {params.cfg:q} --runtime {params.runtime:q}"
        " --threads {threads} --gpus {resources.gpu} --out-csv {output:q} > {log:q} 2>&1"


rule not_k:
    # one job per seed retrains it for every k: one torch start instead of one per k
    input:
        member=lambda wc: posterior_file(wc.variant, NOT_K_METHOD, wc.seed),
        data=data_file,
    output:
        [P.not_k(RESULTS, "{variant}", k, "{seed}") for k in config["not_study"]["ks"]],
    log:
        P.log(RESULTS, "{variant}/not_study/seed{seed}"),
    benchmark:
        P.benchmark(RESULTS, "not_k", "{variant}/not_study/seed{seed}")
    conda:
        ENV
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("not_k", mem_mb=4000, runtime=120),
    params:
        cfg=job_config(
            "data",
            "model",
            "prior",
            *([NOT_K_METHOD] if NOT_K else []),
            "alignment",
            "barrier.n_points",
            "barrier.split",
            "not_study",
            "compute.mixed_precision",
        ),
        runtime=job_runtime,
        ks=" ".join(str(k) for k in config["not_study"]["ks"]),
        checkpoint=lambda wc: P.checkpoint(RESULTS, wc.variant, "not_k", f"seed{wc.seed}"),
    shell:
        "python -m workflow not-k --k {params.ks} --seed {wildcards.seed} --member {input.member:q}"
        " --data {input.data:q} --variant {wildcards.variant} --config {params.cfg:q} --runtime {params.runtime:q}"
        " --checkpoint {params.checkpoint:q} --threads {threads} --gpus {resources.gpu} --out {output:q} > {log:q} 2>&1"


rule summarize_not_k:
    input:
        lambda wc: [
            P.not_k(RESULTS, wc.variant, k, s)
            for k in config["not_study"]["ks"]
            for s in config["seeds"][: config["not_study"]["seeds"]]
        ],
    output:
        P.table(RESULTS, "not_k_{variant}"),
    log:
        P.log(RESULTS, "{variant}/summarize_not_k"),
    benchmark:
        P.benchmark(RESULTS, "summarize_not_k", "{variant}/summarize_not_k")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("summarize_not_k", mem_mb=1000, runtime=10),
    shell:
        "python -m workflow concat-tables --tables {input:q} --out {output:q} > {log:q} 2>&1"


rule not_path:
    input:
        a=lambda wc: [P.posterior(RESULTS, wc.variant, wc.method, p.split("-")[0]) for p in pairs_of(wc.method)],
        b=lambda wc: [P.posterior(RESULTS, wc.variant, wc.method, p.split("-")[1]) for p in pairs_of(wc.method)],
        alignments=lambda wc: [
            P.alignment(RESULTS, wc.variant, wc.method, path_alignment_kind(wc.method), p) for p in pairs_of(wc.method)
        ],
    output:
        P.not_path(RESULTS, "{variant}", "{method}"),
    log:
        P.log(RESULTS, "{variant}/not_path/{method}"),
    benchmark:
        P.benchmark(RESULTS, "not_path", "{variant}/not_path/{method}")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("not_path", mem_mb=4000, runtime=60),
    params:
        cfg=job_config("alignment", "barrier.n_points"),
    shell:
        "python -m workflow not-path --method {wildcards.method} --a {input.a:q} --b {input.b:q}"
        " --alignments {input.alignments:q} --variant {wildcards.variant} --config {params.cfg:q}"
        " --out {output:q} > {log:q} 2>&1"


rule summarize_not_path:
    input:
        lambda wc: [P.not_path(RESULTS, wc.variant, m) for m in not_path_methods()],
    output:
        P.table(RESULTS, "not_path_{variant}"),
    log:
        P.log(RESULTS, "{variant}/summarize_not_path"),
    benchmark:
        P.benchmark(RESULTS, "summarize_not_path", "{variant}/summarize_not_path")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("summarize_not_path", mem_mb=1000, runtime=10),
    shell:
        "python -m workflow concat-tables --tables {input:q} --out {output:q} > {log:q} 2>&1"


rule figure_study:
    input:
        P.table(RESULTS, "{study}_{variant}"),
    output:
        png=report(
            P.figure(RESULTS, "{study}_{variant}", "png"),
            caption="../report/studies.rst",
            category="Weight-space studies",
            labels={"study": "{study}", "variant": "{variant}"},
        ),
        pdf=P.figure(RESULTS, "{study}_{variant}", "pdf"),
    log:
        P.log(RESULTS, "figures/{study}_{variant}"),
    benchmark:
        P.benchmark(RESULTS, "figure_study", "figures/{study}_{variant}")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("figure_study", mem_mb=2000, runtime=10),
    params:
        # derived (takes threads): a caption's wording never reruns a job
        caption=lambda wc, threads: caption_text(wc.study, variant_config(wc.variant), variant=wc.variant),
    shell:
        "python -m workflow figure --kind {wildcards.study} --table {input:q} --variant {wildcards.variant}"
        " --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"


rule studies:
    input:
        study_files(),
