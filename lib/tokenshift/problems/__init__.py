"""What models are asked and how their answers are judged: problem sets (prompts, stop tokens, verifier),
math benchmarks from files or the hub, math-verify answers, cached verdicts, avg@k and pass@k."""
