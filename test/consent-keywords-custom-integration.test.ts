/** Consent keywords through the custom webhook (the suite: consent-keywords-suite.ts). */
import { keywordSuite, stubProviders } from "./consent-keywords-suite";

stubProviders();
keywordSuite("custom");
