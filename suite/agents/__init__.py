"""Agents run by training methods and registered with lm-eval as models (search agent)."""
