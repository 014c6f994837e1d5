"""The method: characteristic examples and how they are scored (Wang et al., IJCAI 2021).

Everything `ucfp.fingerprint`, `ucfp.uniqueness_score` and `ucfp.verify` need, and
nothing of data sets, training or the evaluation zoo: this package never imports
`ucfp.evaluation` (a test checks it). Where each part of the method lives:

- `objectives`: the C-example loss, the robustness term over sampled variants, the
  low-transferability terms (spectral, reference models).
- `variants`: sampling model variants (weight noise, pruning masks; `prune` holds
  the mask arithmetic) and the strategies that batch them.
- `spectral`: the LTRC high-pass filter as an optax transformation.
- `spec`, `step`, `generation`: the generation settings, the pure generation step,
  and `fingerprint`, which runs it (sharded by `sharding`, checkpointed by `resume`,
  its progress shown by `progress`).
- `fingerprints`, `scoring`: the fingerprint file; match rate, Uniqueness Score and
  the verification test (binomial, or beta-binomial for innocents that spread wider).
"""
