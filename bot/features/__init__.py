"""Handlers the hub runs, in order: commands, Q&A capture and suggestions, reactions."""
