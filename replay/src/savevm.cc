#include "ft/replay/savevm.h"

#include "ft/replay/qmp_client.h"

namespace ft::replay {

void SaveVm(const std::shared_ptr<QmpClient>& qmp, const std::string& name, SnapshotRam ram,
            std::chrono::milliseconds timeout, std::function<void(Status)> done) {
  Json capability = {{"capability", "x-ignore-shared"},
                     {"state", ram == SnapshotRam::kInGuestRamFile}};
  Json arguments = {{"capabilities", Json::array({capability})}};
  std::weak_ptr<QmpClient> weak = qmp;
  qmp->Execute("migrate-set-capabilities", std::move(arguments), timeout,
               [weak, name, timeout, done = std::move(done)](Result<Json> set) {
                 if (!set.ok()) return done(set.status());
                 auto monitor = weak.lock();
                 if (!monitor) return done(Aborted("the monitor is gone"));
                 monitor->ExecuteHmp("savevm " + name, timeout, done);
               });
}

}  // namespace ft::replay
