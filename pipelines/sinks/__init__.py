"""pipelines/sinks"""
