"""Code locations: loading the user's definitions from a file or module (code servers come later)."""
