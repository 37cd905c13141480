"""spark-submit's entry point for the feature job: the image holds the project, this only calls it."""

from shoprank.features.engine.job import main

main()
