rule train_posterior:
    input:
        data=rules.prepare_data.output[0],
    output:
        f"{RESULTS}/posteriors/{{method}}/seed{{seed}}.h5",
    log:
        f"{LOGS}/train/{{method}}/seed{{seed}}.log",
    params:
        cfg=job_config("data", "model", "prior", "ensemble", "compute"),
        # undeclared on purpose: Snakemake deletes a failed job's outputs, a checkpoint must survive
        checkpoint=f"{RESULTS}/checkpoints/{{method}}/seed{{seed}}.pt",
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources(mem_mb=4000, runtime=120),
    conda:
        ENV
    shell:
        "python -m workflow train --method {wildcards.method} --seed {wildcards.seed} --data {input.data:q}"
        " --config {params.cfg:q} --checkpoint {params.checkpoint:q} --threads {threads}"
        " --out {output:q} > {log:q} 2>&1"


rule posteriors:
    input:
        expand(f"{RESULTS}/posteriors/{{method}}/seed{{seed}}.h5", method=METHODS, seed=config["seeds"]),
