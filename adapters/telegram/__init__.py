"""Telegram adapter (python-telegram-bot)."""

from adapters.telegram.adapter import TelegramAdapter, TelegramLimits

__all__ = ["TelegramAdapter", "TelegramLimits"]
