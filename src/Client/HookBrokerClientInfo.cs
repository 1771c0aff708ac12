namespace HookBroker.Client;

/// <summary>
/// The .NET SDK for HookBroker. It is filled in by its own issue (the hooks API, the worker host, ASP.NET Core
/// integration); until then this project only compiles the wire contract for the SDK's internal use.
/// </summary>
public static class HookBrokerClientInfo
{
    /// <summary>The wire contract package this SDK speaks.</summary>
    public const string ProtocolPackage = "hookbroker.v1";
}
