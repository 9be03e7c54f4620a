/** Consent keywords through the whatsapp_cloud webhook (the suite: consent-keywords-suite.ts). */
import { keywordSuite, stubProviders } from "./consent-keywords-suite";

stubProviders();
keywordSuite("whatsapp_cloud");
