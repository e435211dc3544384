import { GROUP } from "../crds/types.ts";

/**
 * Argo CD's health check for a kind, in Lua 5.1 (Argo CD runs gopher-lua). Argo CD gives a custom resource no
 * health unless it has one: Progressing while the operator has not observed the latest generation, then Healthy or
 * Degraded from the Ready condition, with its message.
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
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      if condition.status == "True" then
        hs.status = "Healthy"
      elseif condition.status == "False" then
        hs.status = "Degraded"
      else
        hs.status = "Progressing"
      end
      hs.message = condition.message
      return hs
    end
  end
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
