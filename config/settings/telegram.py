from config.env import env

# Root of the Bot API; python-telegram-bot gets `<root>/bot` and `<root>/file/bot`. Tests use a local fake.
TELEGRAM_API_BASE_URL = env.str("TELEGRAM_API_BASE_URL", default="https://api.telegram.org").rstrip("/")
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
TELEGRAM_REQUEST_TIMEOUT_SECONDS = env.float("TELEGRAM_REQUEST_TIMEOUT_SECONDS", default=15.0)
# How long one request waits for a free connection of the process's pool (busy under hundreds of turns);
# it then waits again, for up to two minutes in all, before the send counts as failed.
TELEGRAM_POOL_TIMEOUT_SECONDS = env.float("TELEGRAM_POOL_TIMEOUT_SECONDS", default=5.0)
# Final answers in private chats stream as a Telegram draft (sendMessageDraft) while the model writes them;
# the reply itself is still one ordinary sendMessage. Off: the answer appears only when it is complete.
TELEGRAM_STREAM_REPLIES = env.bool("TELEGRAM_STREAM_REPLIES", default=True)
