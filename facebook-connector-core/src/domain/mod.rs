//! Domain types shared by the engine, the adapters and the binaries.

mod delivery;
mod event;
mod ids;
mod profile;
mod settings;

pub use delivery::{
    Checkpoint, Claim, ClaimedJob, Command, CommandFile, DeliveryCounters, FileRef, FileStatus,
    Job, JobStatus, Lease, NewCommand, NewJob, ProfileState, QueueStats, Received, RecordFormat,
    Renewal, RetryOutcome, WorkerId,
};
pub use event::{Connection, ConnectionStatus, DeliveryEvent, EventEnvelope};
pub use ids::{
    AdAccountId, AudienceId, BusinessId, CompanyId, ConnectionId, DatasetId, FacebookUserId,
    FileName, JobId, ProfileId, Revision, SettingsId, SnapshotId, SubscriptionId,
    TransactionBatchId,
};
pub use profile::{
    AdAccount, Audience, Business, DeliveryState, EncryptedToken, FacebookUser, LongLivedToken,
    ProfileStatus, REQUIRED_SCOPES, StoredProfile, TokenInfo, TokenMeta,
};
pub use settings::{QuickSettings, Settings};
