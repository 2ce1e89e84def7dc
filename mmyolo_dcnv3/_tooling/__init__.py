"""Internal support of the command-line tools (tools/), not part of the package's API: trainings side by side
for the demo and the ablation (:mod:`.trainings`), interleaved timing for the benchmarks (:mod:`.timing`)."""
