"""Personalised product search: text normalisation, the lexical index, the search ranker's features,
labelled queries from the logs, and the ranker's training set and evaluation."""

SEARCH_MODEL_NAME = "search_ranker"  # the served search ranker's name under the model base path
MAX_QUERY_CHARS = 256  # longer queries are refused (422) by the API
