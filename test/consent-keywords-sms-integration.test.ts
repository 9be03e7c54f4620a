/** Consent keywords through the twilio_sms webhook (the suite: consent-keywords-suite.ts). */
import { controlSuite, keywordSuite, stubProviders } from "./consent-keywords-suite";

stubProviders();
keywordSuite("twilio_sms");
controlSuite();
