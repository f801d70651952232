rule train_posterior:
    input:
        data=data_file,
        # a method fitted around another (laplace around the ensemble member) depends on that posterior
        base=base_posterior,
    output:
        f"{V}/posteriors/{{method}}/seed{{seed}}.h5",
    log:
        f"{LOGS}/{{variant}}/train/{{method}}/seed{{seed}}.log",
    params:
        cfg=job_config("data", "model", "prior", "{method}", "compute.mixed_precision"),
        runtime=job_runtime,
        # undeclared on purpose: Snakemake deletes a failed job's outputs, a checkpoint must survive
        checkpoint=lambda wc: f"{RESULTS}/{wc.variant}/checkpoints/{wc.method}/seed{wc.seed}.pt",
        base=lambda wc, input: f"--base {shlex.quote(input.base[0])}" if input.base else "",
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources(mem_mb=4000, runtime=120),
    conda:
        ENV
    shell:
        "python -m workflow train --method {wildcards.method} --seed {wildcards.seed} --data {input.data:q}"
        " {params.base} --config {params.cfg:q} --runtime {params.runtime:q} --checkpoint {params.checkpoint:q}"
        " --threads {threads} --gpus {resources.gpu} --out {output:q} > {log:q} 2>&1"


rule posteriors:
    input:
        [posterior_files(v, m) for v in VARIANTS for m in METHODS],
