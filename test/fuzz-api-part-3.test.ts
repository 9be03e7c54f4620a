/** API fuzzing, part 3 of 3 (the suite: fuzz-api-suite.ts). */
import { fuzzApiSuite } from "./fuzz-api-suite";

fuzzApiSuite(2, 3);
