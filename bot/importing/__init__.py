"""Importing a community's chat history: Telegram Desktop and DiscordChatExporter JSON.

``copss import telegram FILE`` / ``copss import discord FILE`` read an export as a stream
(:mod:`bot.importing.stream`), turn it into platform-neutral :class:`~bot.importing.records.
ImportedMessage` records (:mod:`~bot.importing.telegram_export`,
:mod:`~bot.importing.discord_export`), rebuild who answered which question
(:mod:`~bot.importing.threads`) and store the result the way live capture stores it
(:mod:`~bot.importing.writer`), driven by :func:`~bot.importing.run.import_file`.
"""
