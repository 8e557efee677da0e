-- Argo CD resource action "promote" for modeldeploy.io/ModelDeployment: requests it from the operator
-- through the annotation modeldeploy.io/action = "promote@<id>". The id (UTC time and the object's
-- resourceVersion) makes every request unique, so the operator carries it out once.
-- Argo CD opens no global `os` for argocd-cm scripts; its safe os (date, time) comes from require.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local id = os.date("!%Y%m%dT%H%M%SZ") .. "-rv" .. tostring(obj.metadata.resourceVersion or "0")
obj.metadata.annotations["modeldeploy.io/action"] = "promote@" .. id
return obj
