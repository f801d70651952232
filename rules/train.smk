# methods whose jobs each fit several seeds (hmc.chains_per_job > 1): method -> groups of seeds
TOGETHER = {m: seed_groups(config, m) for m in TRAINED}
TOGETHER = {m: g for m, g in TOGETHER.items() if any(len(s) > 1 for s in g)}


rule train_posterior:
    input:
        data=data_file,
        # a method fitted around another (laplace around the ensemble member) depends on that posterior
        base=base_posterior,
    output:
        P.posterior(RESULTS, "{variant}", "{method}", "{seed}"),
    log:
        P.log(RESULTS, "{variant}/train/{method}/seed{seed}"),
    benchmark:
        P.benchmark(RESULTS, "train_posterior", "{variant}/train/{method}/seed{seed}")
    wildcard_constraints:
        # a method whose seeds are fitted in groups has the rules below instead
        method="|".join(m for m in TRAINED if m not in TOGETHER) or "(?!)",
    conda:
        ENV
    threads: config["compute"]["threads"]
    resources:
        **heavy_resources("train_posterior", mem_mb=4000, runtime=120),
    params:
        cfg=job_config("data", "model", "prior", "{method}", "compute.mixed_precision"),
        runtime=job_runtime,
        # undeclared on purpose: Snakemake deletes a failed job's outputs, a checkpoint must survive
        checkpoint=lambda wc: P.checkpoint(RESULTS, wc.variant, wc.method, f"seed{wc.seed}"),
        base=lambda wc, input: f"--base {shlex.quote(input.base[0])}" if input.base else "",
    shell:
        "python -m workflow train --method {wildcards.method} --seed {wildcards.seed} --data {input.data:q}"
        " {params.base} --config {params.cfg:q} --runtime {params.runtime:q} --checkpoint {params.checkpoint:q}"
        " --threads {threads} --gpus {resources.gpu} --out {output:q} > {log:q} 2>&1"


for _method, _groups in TOGETHER.items():
    for _seeds in _groups:
        _name = "-".join(map(str, _seeds))

        # one job advances these seeds' chains together (the same draws as one job per seed)
        rule:
            name:
                chains_rule(_method, _seeds)
            input:
                data=data_file,
            output:
                [P.posterior(RESULTS, "{variant}", _method, s) for s in _seeds],
            log:
                P.log(RESULTS, f"{{variant}}/train/{_method}/seeds{_name}"),
            benchmark:
                P.benchmark(RESULTS, "train_posterior", f"{{variant}}/train/{_method}/seeds{_name}")
            conda:
                ENV
            threads: config["compute"]["threads"]
            resources:
                **heavy_resources("train_posterior", mem_mb=4000, runtime=120, method=_method, chains=len(_seeds)),
            params:
                cfg=job_config("data", "model", "prior", _method, "compute.mixed_precision"),
                runtime=job_runtime,
                checkpoint=P.checkpoint(RESULTS, "{variant}", _method, f"seeds{_name}"),
                method=_method,
                seeds=" ".join(map(str, _seeds)),
            shell:
                "python -m workflow train --method {params.method} --seed {params.seeds} --data {input.data:q}"
                " --config {params.cfg:q} --runtime {params.runtime:q} --checkpoint {params.checkpoint:q}"
                " --threads {threads} --gpus {resources.gpu} --out {output:q} > {log:q} 2>&1"


rule posteriors:
    input:
        [posterior_files(v, m) for v in VARIANTS for m in METHODS],
