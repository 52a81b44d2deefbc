// A real StoreBackend with some of its methods replaced, for tests that script a failure in front
// of the database (a lookup that resets, a claim the store cannot answer, ...).

import type { StoreBackend } from "../store.ts";

export function overriding(backend: StoreBackend, overrides: Partial<StoreBackend>): StoreBackend {
  return {
    findNumberOwner: (phoneNumber) => backend.findNumberOwner(phoneNumber),
    startCall: (call) => backend.startCall(call),
    getCall: (callSid) => backend.getCall(callSid),
    upsertTurns: (rows) => backend.upsertTurns(rows),
    finishCall: (end) => backend.finishCall(end),
    claimCallStream: (callSid, tenantId, stream, workerId) =>
      backend.claimCallStream(callSid, tenantId, stream, workerId),
    renewWorkerLease: (workerId) => backend.renewWorkerLease(workerId),
    releaseWorkerLease: (workerId) => backend.releaseWorkerLease(workerId),
    resumeCrashedCall: (call, lapseMs, endReason) => backend.resumeCrashedCall(call, lapseMs, endReason),
    touchCallStream: (callSid, stream) => backend.touchCallStream(callSid, stream),
    finalizeStaleCalls: () => backend.finalizeStaleCalls(),
    loadTurns: (callSid) => backend.loadTurns(callSid),
    toolSigningKey: (tenantId) => backend.toolSigningKey(tenantId),
    upsertToolCalls: (rows) => backend.upsertToolCalls(rows),
    loadToolCalls: (callSid) => backend.loadToolCalls(callSid),
    recordTransferOutcome: (callSid, outcome, comeBack) =>
      backend.recordTransferOutcome(callSid, outcome, comeBack),
    recordTwilioStatus: (update) => backend.recordTwilioStatus(update),
    recordRecording: (update) => backend.recordRecording(update),
    outboundSettings: (tenantId) => backend.outboundSettings(tenantId),
    tenantNumbers: (tenantId) => backend.tenantNumbers(tenantId),
    close: () => backend.close(),
    ...overrides,
  };
}
