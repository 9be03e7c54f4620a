/** API fuzzing, part 2 of 3 (the suite: fuzz-api-suite.ts). */
import { fuzzApiSuite } from "./fuzz-api-suite";

fuzzApiSuite(1, 3);
