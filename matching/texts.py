"""The matchmaker's own words and its prompt, in the project's language (Russian in matching/locale)."""

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

PREAMBLE = _(
    "You are a matchmaker for IT people: seekers (developers, designers, testers, analysts and others looking "
    "for a job or projects) and providers (companies, teams and clients who hire or contract them). Some people "
    "are both.\n"
    "Talk naturally and warmly, one or two questions at a time, and learn the user's profile: whether they seek "
    "work, provide it, or both; what they do or need (skills, stack, seniority, experience); location; work "
    "format (remote, office or hybrid; full-time, part-time or contract); rates or budget; availability.\n"
    "Save what you learn with save_profile as soon as you learn it. Omit a field to keep it, send an empty "
    "string to clear it. `summary`: a short description of the person for their profile card. "
    "`matching_summary`: two to four sentences in the third person on what they offer and what they look for, "
    "with the stack, seniority, format and location, written so that a good counterpart's summary would read "
    "alike; never put names or contact details in it. `private_observations`: your private notes (impressions, "
    "doubts, preferences they would not state publicly); other users never see them.\n"
    "Decide yourself when you know enough to look for matches: at least the role, what they do or need, and "
    "the work format. Then call save_profile with complete=true. The user is then shown a profile card with a "
    "Start matching button: tell them to check the card and press the button.\n"
    "Users may change their profile in words at any time (for example, change my location to Berlin): update "
    "the fields with save_profile. If they were already matching, they are asked to confirm with the button "
    "again.\n"
    "Users may send their CV as a file: its text then appears in the conversation. Fill every field you can from "
    "it with save_profile (and complete=true if that is enough), then ask only for what is still missing, in one "
    "message; do not ask about what the CV already says.\n"
    "Matching runs in the background and the user is notified when someone fits: never promise a match and "
    "never invent people. Use get_profile to read the saved profile when you need it."
)

SNAPSHOT_EMPTY = _("Saved profile: none yet. Learn about the user and save what you learn.")
SNAPSHOT_HEADER = _("Saved profile (state: %(state)s):")
STATE_EXPLAINED = {
    "onboarding": _("not complete yet"),
    "ready": _("complete; the user has not pressed Start matching yet"),
    "active": _("complete and in matching"),
    "updated": _("changed; waiting for the user to press Start matching again"),
}

ROLE_LABELS = {
    "seeker": _("looking for work"),
    "provider": _("offering work"),
    "both": _("looking for work and offering it"),
}
FIELD_LABELS = {
    "role": _("Role"),
    "summary": _("About"),
    "location": _("Location"),
    "work_format": _("Format"),
    "rates": _("Rates"),
    "availability": _("Availability"),
    "matching_summary": _("For matching"),
}

CARD_TITLE = _("Your profile")
CARD_READY = _("If everything is right, press “Start matching”. To change something, just tell me.")
CARD_UPDATED = _(
    "Your profile has changed. Matching is paused until you confirm it: press “Start matching”, "
    "or tell me what else to change."
)
BUTTON_START_MATCHING = _("Start matching")

ACTIVATED = _("Matching has started. I will write to you as soon as I find someone who fits.")
ACTIVATED_NOTICE = _("Matching started")
ALREADY_ACTIVE = _("You are already in matching.")
# Start matching pressed while the profile could not be embedded: it joins as soon as a retry succeeds.
ACTIVATION_DEFERRED = _(
    "Matching will start shortly: your profile is still being prepared. I will write to you when it has started."
)
ACTIVATION_DEFERRED_NOTICE = _("Matching will start shortly")
NOT_READY = _("Your profile is not complete yet. Let's finish it first.")

WIPE_CONFIRM = _(
    "You already have a profile. Do you want to delete it and start over? Your matching stops until you "
    "complete a new one."
)
BUTTON_WIPE_YES = _("Yes, start over")
BUTTON_WIPE_NO = _("No, keep it")
WIPE_KEPT = _("Your profile is kept. Let's continue.")
WIPE_DONE_NOTICE = _("Profile deleted")
NOTHING_TO_WIPE = _("There is nothing to delete.")

INTRODUCTION_HEAD = _("I found someone who may be a good match for you (%(role)s):\n\n%(summary)s")
INTRODUCTION_WHY = _("Why it may fit: %(why)s")
FIT_SKILLS = _("Skills that fit")
FIT_SENIORITY = _("Seniority")
FIT_LOCATION_FORMAT = _("Location and format")
FIT_RATES = _("Rates")
FIT_CONCERNS = _("Worth checking")
INTRODUCTION_QUESTION = _(
    "Would you like to connect? If you both accept, I will share your contacts with each other. "
    "Until then neither of you sees the other's name or contacts."
)
BUTTON_ACCEPT = pgettext_lazy("match", "Accept")
BUTTON_REJECT = pgettext_lazy("match", "Reject")
ACCEPTED_WAITING = _("Thank you! I will let you know as soon as the other person answers.")
ACCEPTED_NOTICE = _("Accepted")
REJECTED = _("Understood, I will not connect you. I will keep looking.")
REJECTED_NOTICE = _("Declined")
OTHER_DECLINED = _("The other person decided not to connect this time. I will keep looking for you.")
CONNECTED = _("It's a match! You both accepted. Here is how to reach %(name)s: %(link)s\n\n%(summary)s")
ALREADY_ANSWERED = _("You have already answered.")
MATCH_CLOSED = _("This match is no longer open.")
NOT_YOUR_MATCH = _("This match is not yours.")
SOMEONE = _("them")

OUTCOME_TALKED_QUESTION = _(
    "Some time ago I connected you with someone. Did you talk with them? Your answer helps me find better "
    "matches for you."
)
BUTTON_TALKED_YES = _("Yes, we talked")
BUTTON_TALKED_NO = _("No, we did not")
OUTCOME_WORKED_QUESTION = _("Did it work out?")
BUTTON_WORKED_YES = _("Yes, it worked out")
BUTTON_WORKED_NO = _("No, it did not")
OUTCOME_REASON_QUESTION = _(
    "Sorry to hear that. What was the main reason? (optional; I will not introduce you to this person again)"
)
REASON_LABELS = {
    "skills": _("Skills"),
    "seniority": _("Seniority"),
    "rates": _("Rates or budget"),
    "location_format": _("Location or format"),
    "no_reply": _("No reply"),
    "other": _("Something else"),
}
BUTTON_REASON_SKIP = _("Skip")
OUTCOME_THANKS = _("Thank you, I will take it into account for your next matches.")
OUTCOME_GLAD = _("Great to hear! Thank you for telling me.")
OUTCOME_NOTED = _("Noted")

CV_READ = _("[The user sent their CV '%(name)s'. Its text follows.]")
CV_TOO_LARGE = _("This file is too large (%(size)s MB). Please send a CV of at most %(limit)s MB as PDF, DOCX or TXT.")
CV_UNSUPPORTED = _("I can read CVs as PDF, DOCX or TXT files. Please send your CV in one of these formats.")
CV_UNREADABLE = _(
    "I could not read this file (%(reason)s). Please send your CV as a PDF, DOCX or TXT file, or just tell me "
    "about yourself."
)
CV_DOWNLOAD_FAILED = _("I could not download this file from Telegram. Please try sending it again.")
