"""pipelines/alerts"""
