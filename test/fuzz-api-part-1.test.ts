/** API fuzzing, part 1 of 3 (the suite: fuzz-api-suite.ts). */
import { fuzzApiSuite } from "./fuzz-api-suite";

fuzzApiSuite(0, 3);
