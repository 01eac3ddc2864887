"""Model families, one file each: classifier, language_model, ngram, gan."""
