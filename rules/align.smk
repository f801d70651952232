localrules:
    summarize_joint,  # reads the joint alignments and writes one table: seconds


rule align_pair:
    input:
        a=P.posterior(RESULTS, "{variant}", "{method}", "{a}"),
        b=P.posterior(RESULTS, "{variant}", "{method}", "{b}"),
        data=alignment_data,
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
        **job_resources("align_pair", mem_mb=4000, runtime=60),
    params:
        cfg=job_config("alignment"),
        runtime=job_runtime,
        # a loss matcher (alignment.matcher) trains on the data: then its path, else nothing
        data=lambda wc, input: " ".join(f"--data {shlex.quote(p)}" for p in input.get("data", [])),
    shell:
        "python -m workflow align --kind {wildcards.kind} --seeds {wildcards.a} {wildcards.b} --a {input.a:q} --b {input.b:q} {params.data}"
        " --config {params.cfg:q} --runtime {params.runtime:q} --out {output:q} > {log:q} 2>&1"


rule alignments:
    input:
        alignment_files(),


rule align_joint:
    input:
        lambda wc: posterior_files(wc.variant, wc.method),
    output:
        P.joint_alignment(RESULTS, "{variant}", "{method}", "{kind}"),
    log:
        P.log(RESULTS, "{variant}/align/{method}/joint_{kind}/all-seeds"),
    benchmark:
        P.benchmark(RESULTS, "align_joint", "{variant}/align/{method}/joint_{kind}/all-seeds")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("align_joint", mem_mb=4000, runtime=60),
    params:
        cfg=job_config("alignment"),
        runtime=job_runtime,
        seeds=lambda wc: " ".join(str(s) for s in seeds_of(wc.method)),
    shell:
        "python -m workflow align-joint --kind {wildcards.kind} --posteriors {input:q} --seeds {params.seeds}"
        " --config {params.cfg:q} --runtime {params.runtime:q} --out {output:q} > {log:q} 2>&1"


rule joint_pair:
    input:
        joint=P.joint_alignment(RESULTS, "{variant}", "{method}", "{kind}"),
        a=P.posterior(RESULTS, "{variant}", "{method}", "{a}"),
        b=P.posterior(RESULTS, "{variant}", "{method}", "{b}"),
    output:
        P.alignment(RESULTS, "{variant}", "{method}", "joint_{kind}", "{a}-{b}"),
    log:
        P.log(RESULTS, "{variant}/align/{method}/joint_{kind}/{a}-{b}"),
    benchmark:
        P.benchmark(RESULTS, "joint_pair", "{variant}/align/{method}/joint_{kind}/{a}-{b}")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("joint_pair", mem_mb=4000, runtime=60),
    shell:
        "python -m workflow joint-pair --joint {input.joint:q} --seeds {wildcards.a} {wildcards.b} --a {input.a:q}"
        " --b {input.b:q} --out {output:q} > {log:q} 2>&1"


rule joint_merged:
    # a handful of networks on the test split: on the CPU, like rebasin's matching
    input:
        joint=P.joint_alignment(RESULTS, "{variant}", "{method}", "{kind}"),
        posteriors=lambda wc: posterior_files(wc.variant, wc.method),
        data=data_file,
    output:
        P.joint_merged(RESULTS, "{variant}", "{method}", "{kind}"),
    log:
        P.log(RESULTS, "{variant}/align/{method}/joint_{kind}/merged"),
    benchmark:
        P.benchmark(RESULTS, "joint_merged", "{variant}/align/{method}/joint_{kind}/merged")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("joint_merged", mem_mb=4000, runtime=60),
    params:
        cfg=job_config("barrier"),
        runtime=job_runtime,
    shell:
        "python -m workflow joint-merged --joint {input.joint:q} --posteriors {input.posteriors:q}"
        " --data {input.data:q} --config {params.cfg:q} --runtime {params.runtime:q} --threads {threads}"
        " --out {output:q} > {log:q} 2>&1"


rule summarize_joint:
    input:
        joint=lambda wc: joint_files(wc.variant),
        pairs=lambda wc: joint_pairwise_files(wc.variant),
        merged=lambda wc: joint_merged_files(wc.variant),
    output:
        csv=P.table(RESULTS, "joint_alignment_{variant}"),
        md=P.table(RESULTS, "joint_alignment_{variant}", "md"),
    log:
        P.log(RESULTS, "{variant}/joint_alignment"),
    benchmark:
        P.benchmark(RESULTS, "summarize_joint", "{variant}/joint_alignment")
    conda:
        ENV
    threads: 1
    resources:
        **job_resources("summarize_joint", mem_mb=2000, runtime=30),
    shell:
        "python -m workflow summarize-joint --joint {input.joint:q} --pairs {input.pairs:q} --merged {input.merged:q}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"
