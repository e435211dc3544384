import { GROUP } from "../crds/types.ts";

/**
 * Argo CD's health check for a kind, in Lua 5.1 (Argo CD runs gopher-lua). Argo CD gives a custom resource no
 * health unless it has one: Progressing while the operator has not observed the latest generation; then, for the
 * kinds that are ready or not, Healthy or Degraded from the Ready condition, with its message; for a QuantumJob,
 * which runs to completion as a batch Job does (Complete and Failed conditions, no Ready), Progressing until it
 * completes, then Healthy, or Degraded once it has failed or was cancelled.
 */
export function healthCheckLua(): string {
  return `local hs = {}
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local ready, complete, failed
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Complete" then
      complete = condition
    elseif condition.type == "Failed" then
      failed = condition
    end
  end
end
local function report(status, condition)
  hs.status = status
  hs.message = condition.message
  return hs
end
if ready ~= nil then
  if ready.status == "True" then return report("Healthy", ready) end
  if ready.status == "False" then return report("Degraded", ready) end
  return report("Progressing", ready)
end
if failed ~= nil and failed.status == "True" then return report("Degraded", failed) end
if complete ~= nil then
  if complete.status == "True" then return report("Healthy", complete) end
  if complete.reason == "Cancelled" then return report("Degraded", complete) end
  return report("Progressing", complete)
end
hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
`;
}

/** The argocd-cm key under which Argo CD looks up a kind's health check. */
export function healthCheckKey(kind: string): string {
  return `resource.customizations.health.${GROUP}_${kind}`;
}
