"""Command-line programs only: predict, ask, convert_keras, convert_torch.
Library code never imports them."""
