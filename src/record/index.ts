/**
 * The `_dmarc` TXT record: parse, validate, interpret, edit for a rollout
 * stage, serialise, and split into DNS character-strings. Pure functions,
 * values in and values out, no I/O; the CLI, the engine and the provider
 * adapters all go through here.
 */
export { POLICIES, isPolicy, oneLevelBelow, policyFromTagValue, type Policy } from './policy.js';
export { parseStageLabel, stageLabel, stageProblem, type StageTarget } from './stage.js';
export { hasErrors, type ProblemCode, type ProblemSeverity, type RecordProblem } from './problem.js';
export { dmarcRecordsOf, isDmarcRecord, parseRecord, tagValue, type ParsedRecord, type RecordTag } from './parse.js';
export { serializeRecord } from './serialize.js';
export { validateParsed, validateRecord } from './validate.js';
export { HISTORIC_TAGS, RFC9989_TAGS } from './tags.js';
export {
  RECORD_MAX_RDATA_OCTETS,
  RECORD_UDP_SAFE_RDATA_OCTETS,
  TXT_STRING_MAX_OCTETS,
  txtRdataOctets,
} from './length.js';
export {
  interpretRecord,
  type PolicyApplication,
  type ReceiverInterpretation,
  type ReceiverKind,
  type RecordInterpretation,
} from './interpret.js';
export { editRecordForStage, recordForStage, type EditOptions, type EditResult } from './edit.js';
export { dmarcName, recordForPlanStage, type StagePlan } from './plan-stage.js';
export { hasUsableUri, mailtoAddresses, uriListProblems } from './uri.js';
export { joinTxtStrings, quoteTxt, splitTxtStrings, unquoteTxt } from './txt.js';
export { policyRank, publishedRank, publishedStage, type PublishedStage } from './published.js';
