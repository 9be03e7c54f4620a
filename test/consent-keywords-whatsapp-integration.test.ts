/** Consent keywords through the twilio_whatsapp webhook (the suite: consent-keywords-suite.ts). */
import { keywordSuite, stubProviders } from "./consent-keywords-suite";

stubProviders();
keywordSuite("twilio_whatsapp");
