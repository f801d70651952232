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
        table=f"{RESULTS}/tables/basin_{{variant}}.csv",
        alignments=[f"{V}/basin/{label}.h5" for label in BASIN_LABELS],
    log:
        f"{LOGS}/{{variant}}/basin.log",
    benchmark:
        f"{BENCHMARKS}/basin/{{variant}}/basin.tsv",
    params:
        cfg=job_config("alignment"),
        sources=lambda wc: json.dumps(basin_sources(wc.variant)),
        outs=lambda wc: json.dumps(basin_outputs(wc.variant)),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    shell:
        "python -m workflow basin --reference {input.reference:q} --sources {params.sources:q} --outs {params.outs:q}"
        " --variant {wildcards.variant} --config {params.cfg:q} --out-csv {output.table:q} > {log:q} 2>&1"


rule sigma_histograms:
    input:
        rebasin=lambda wc: list(rebasin_files(wc.variant).values()),
        gaussians=lambda wc: [p for paths in gaussian_files(wc.variant).values() for p in paths],
    output:
        f"{RESULTS}/tables/sigma_{{variant}}.csv",
    log:
        f"{LOGS}/{{variant}}/sigma_histograms.log",
    benchmark:
        f"{BENCHMARKS}/sigma_histograms/{{variant}}/sigma_histograms.tsv",
    params:
        rebasin=lambda wc: json.dumps(rebasin_files(wc.variant), sort_keys=True),
        gaussians=lambda wc: json.dumps(gaussian_files(wc.variant)),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
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
        f"{RESULTS}/tables/pruning_{{variant}}.csv",
    log:
        f"{LOGS}/{{variant}}/pruning.log",
    benchmark:
        f"{BENCHMARKS}/pruning/{{variant}}/pruning.tsv",
    params:
        cfg=job_config("pruning"),
        runtime=job_runtime,
        rebasin=lambda wc: json.dumps(rebasin_files(wc.variant), sort_keys=True),
        gaussians=lambda wc: json.dumps({m: paths[0] for m, paths in gaussian_files(wc.variant).items()}),
        merged=lambda wc: json.dumps(pruning_merged(wc.variant)),
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("pruning", mem_mb=4000, runtime=30),
    conda:
        ENV
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
        [f"{V}/not_study/k{k}/seed{{seed}}.csv" for k in config["not_study"]["ks"]],
    log:
        f"{LOGS}/{{variant}}/not_study/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/not_k/{{variant}}/not_study/seed{{seed}}.tsv",
    params:
        cfg=job_config("data", "model", "prior", *([NOT_K_METHOD] if NOT_K else []), "alignment",
                       "barrier.n_points", "barrier.split", "not_study", "compute.mixed_precision"),
        runtime=job_runtime,
        ks=" ".join(str(k) for k in config["not_study"]["ks"]),
        checkpoint=lambda wc: f"{RESULTS}/{wc.variant}/checkpoints/not_k/seed{wc.seed}.pt",
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("not_k", mem_mb=4000, runtime=120),
    conda:
        ENV
    shell:
        "python -m workflow not-k --k {params.ks} --seed {wildcards.seed} --member {input.member:q}"
        " --data {input.data:q} --variant {wildcards.variant} --config {params.cfg:q} --runtime {params.runtime:q}"
        " --checkpoint {params.checkpoint:q} --threads {threads} --gpus {resources.gpu} --out {output:q} > {log:q} 2>&1"


rule summarize_not_k:
    input:
        lambda wc: [
            f"{RESULTS}/{wc.variant}/not_study/k{k}/seed{s}.csv"
            for k in config["not_study"]["ks"]
            for s in config["seeds"][: config["not_study"]["seeds"]]
        ],
    output:
        f"{RESULTS}/tables/not_k_{{variant}}.csv",
    log:
        f"{LOGS}/{{variant}}/summarize_not_k.log",
    benchmark:
        f"{BENCHMARKS}/summarize_not_k/{{variant}}/summarize_not_k.tsv",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "python -m workflow concat-tables --tables {input:q} --out {output:q} > {log:q} 2>&1"


rule not_path:
    input:
        a=lambda wc: [f"{RESULTS}/{wc.variant}/posteriors/{wc.method}/seed{p.split('-')[0]}.h5" for p in pairs_of(wc.method)],
        b=lambda wc: [f"{RESULTS}/{wc.variant}/posteriors/{wc.method}/seed{p.split('-')[1]}.h5" for p in pairs_of(wc.method)],
        alignments=lambda wc: [
            f"{RESULTS}/{wc.variant}/alignment/{wc.method}/{path_alignment_kind(wc.method)}/{p}.h5"
            for p in pairs_of(wc.method)
        ],
    output:
        f"{V}/not_path/{{method}}.csv",
    log:
        f"{LOGS}/{{variant}}/not_path/{{method}}.log",
    benchmark:
        f"{BENCHMARKS}/not_path/{{variant}}/not_path/{{method}}.tsv",
    params:
        cfg=job_config("alignment", "barrier.n_points"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    shell:
        "python -m workflow not-path --method {wildcards.method} --a {input.a:q} --b {input.b:q}"
        " --alignments {input.alignments:q} --variant {wildcards.variant} --config {params.cfg:q}"
        " --out {output:q} > {log:q} 2>&1"


rule summarize_not_path:
    input:
        lambda wc: [f"{RESULTS}/{wc.variant}/not_path/{m}.csv" for m in not_path_methods()],
    output:
        f"{RESULTS}/tables/not_path_{{variant}}.csv",
    log:
        f"{LOGS}/{{variant}}/summarize_not_path.log",
    benchmark:
        f"{BENCHMARKS}/summarize_not_path/{{variant}}/summarize_not_path.tsv",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "python -m workflow concat-tables --tables {input:q} --out {output:q} > {log:q} 2>&1"


rule figure_study:
    input:
        f"{RESULTS}/tables/{{study}}_{{variant}}.csv",
    output:
        png=report(
            f"{RESULTS}/figures/{{study}}_{{variant}}.png",
            caption="../report/studies.rst",
            category="Weight-space studies",
            labels={"study": "{study}", "variant": "{variant}"},
        ),
        pdf=f"{RESULTS}/figures/{{study}}_{{variant}}.pdf",
    log:
        f"{LOGS}/figures/{{study}}_{{variant}}.log",
    benchmark:
        f"{BENCHMARKS}/figure_study/figures/{{study}}_{{variant}}.tsv",
    params:
        # derived (takes threads): a caption's wording never reruns a job
        caption=lambda wc, threads: caption_text(wc.study, variant_config(wc.variant), variant=wc.variant),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "python -m workflow figure --kind {wildcards.study} --table {input:q} --variant {wildcards.variant}"
        " --png {output.png:q} --pdf {output.pdf:q} > {log:q} 2>&1"


rule studies:
    input:
        study_files(),
