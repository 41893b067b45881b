"""Where inputs come from for `infer`: files, stdin, a watched folder."""
