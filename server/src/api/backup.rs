//! `dbforge.v1.BackupService`: backups, restores and backup policies.

use tonic::{Request, Response, Status};

use super::{
    Call, caller,
    convert::backup::{backup_page_token, backup_pb, restore_mode},
};
use crate::{
    core::{
        backup::{BackupFilter, BackupRecord, PolicySpec},
        error::Error,
        forge::Forge,
    },
    pb::{self, backup_service_server::BackupService},
};

/// The BackupService adapter.
#[derive(Debug, Clone)]
pub struct BackupApi {
    forge: Forge,
}

impl BackupApi {
    /// Wraps the Forge.
    pub fn new(forge: Forge) -> Self {
        Self { forge }
    }

    fn wire(&self, b: BackupRecord) -> pb::Backup {
        let location = self.forge.backups().location(&b);
        backup_pb(b, location)
    }
}

#[tonic::async_trait]
impl BackupService for BackupApi {
    async fn create_backup(
        &self,
        req: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<pb::CreateBackupResponse>, Status> {
        let who = caller(&req)?;
        let pb::CreateBackupRequest {
            database,
            target,
            labels,
        } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "CreateBackup")
            .database(&database)
            .statement(format!("target={target}"));
        let result = self
            .forge
            .create_backup(&who, &database, &target, labels.into_iter().collect())
            .await
            .map(|b| pb::CreateBackupResponse {
                backup: Some(self.wire(b)),
            })
            .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn get_backup(
        &self,
        req: Request<pb::GetBackupRequest>,
    ) -> Result<Response<pb::GetBackupResponse>, Status> {
        let who = caller(&req)?;
        let pb::GetBackupRequest { id } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "GetBackup").statement(id.clone());
        let result = self
            .forge
            .get_backup(&who, &id)
            .await
            .map(|b| pb::GetBackupResponse {
                backup: Some(self.wire(b)),
            })
            .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn list_backups(
        &self,
        req: Request<pb::ListBackupsRequest>,
    ) -> Result<Response<pb::ListBackupsResponse>, Status> {
        let who = caller(&req)?;
        let req = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "ListBackups").database(&req.database);
        let result = async {
            let filter = BackupFilter::try_from(req)?;
            let page = self.forge.list_backups(&who, filter).await?;
            Ok::<_, Error>(pb::ListBackupsResponse {
                next_page_token: backup_page_token(page.next),
                backups: page.backups.into_iter().map(|b| self.wire(b)).collect(),
            })
        }
        .await
        .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn delete_backup(
        &self,
        req: Request<pb::DeleteBackupRequest>,
    ) -> Result<Response<pb::DeleteBackupResponse>, Status> {
        let who = caller(&req)?;
        let pb::DeleteBackupRequest { id, allow_missing } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "DeleteBackup").statement(id.clone());
        let result = self
            .forge
            .delete_backup(&who, &id, allow_missing)
            .await
            .map(|deleted| pb::DeleteBackupResponse { deleted })
            .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn restore_backup(
        &self,
        req: Request<pb::RestoreBackupRequest>,
    ) -> Result<Response<pb::RestoreBackupResponse>, Status> {
        let who = caller(&req)?;
        let pb::RestoreBackupRequest {
            backup_id,
            mode,
            new_name,
            labels,
        } = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "RestoreBackup")
            .database(&new_name)
            .statement(format!("backup={backup_id} mode={mode}"));
        let result = async {
            let mode = restore_mode(mode, new_name, labels)?;
            let report = self.forge.restore_backup(&who, &backup_id, mode).await?;
            let safety = report.safety.clone().map(|s| self.wire(s));
            let mut resp = pb::RestoreBackupResponse::from(report);
            resp.safety_backup = safety;
            Ok::<_, Error>(resp)
        }
        .await
        .map_err(Status::from);
        call.done(result, |r| Some(r.rows)).await.map(Response::new)
    }

    async fn set_backup_policy(
        &self,
        req: Request<pb::SetBackupPolicyRequest>,
    ) -> Result<Response<pb::SetBackupPolicyResponse>, Status> {
        let who = caller(&req)?;
        let pb::SetBackupPolicyRequest { policy } = req.into_inner();
        let name = policy.as_ref().map(|p| p.name.clone()).unwrap_or_default();
        let call = Call::new(self.forge.audit(), &who, "SetBackupPolicy").statement(name);
        let result = async {
            let policy = policy.ok_or_else(|| Error::invalid("policy", "missing"))?;
            let spec = PolicySpec::try_from(policy)?;
            let (stored, created) = self.forge.set_backup_policy(&who, spec).await?;
            Ok::<_, Error>(pb::SetBackupPolicyResponse {
                policy: Some(stored.into()),
                created,
            })
        }
        .await
        .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn list_backup_policies(
        &self,
        req: Request<pb::ListBackupPoliciesRequest>,
    ) -> Result<Response<pb::ListBackupPoliciesResponse>, Status> {
        let who = caller(&req)?;
        let pb::ListBackupPoliciesRequest {} = req.into_inner();
        let call = Call::new(self.forge.audit(), &who, "ListBackupPolicies");
        let result = self
            .forge
            .list_backup_policies(&who)
            .await
            .map(|ps| pb::ListBackupPoliciesResponse {
                policies: ps.into_iter().map(Into::into).collect(),
            })
            .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }

    async fn delete_backup_policy(
        &self,
        req: Request<pb::DeleteBackupPolicyRequest>,
    ) -> Result<Response<pb::DeleteBackupPolicyResponse>, Status> {
        let who = caller(&req)?;
        let pb::DeleteBackupPolicyRequest {
            name,
            allow_missing,
        } = req.into_inner();
        let call =
            Call::new(self.forge.audit(), &who, "DeleteBackupPolicy").statement(name.clone());
        let result = self
            .forge
            .delete_backup_policy(&who, &name, allow_missing)
            .await
            .map(|deleted| pb::DeleteBackupPolicyResponse { deleted })
            .map_err(Status::from);
        call.done(result, |_| None).await.map(Response::new)
    }
}
