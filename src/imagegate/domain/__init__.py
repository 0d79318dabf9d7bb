"""Pure domain rules: job states, parameters, prompt flags. Imports nothing of ours."""
