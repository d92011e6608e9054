"""Corpus recipes: per corpus, the two verbs download_<corpus> and prepare_<corpus> (as in lhotse)."""
