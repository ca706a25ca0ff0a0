"""Training: recipes, loops, distillation, diagnostics, checkpoints (being built)."""
