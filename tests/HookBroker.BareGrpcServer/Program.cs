using System.Net;
using HookBroker.BareGrpcServer;
using Microsoft.AspNetCore.Server.Kestrel.Core;

// The bare gRPC server of `HookBroker.Benchmarks raise --bare`. It reads the broker's port settings
// (HookBroker__GrpcPort, HookBroker__HttpPort) and listens the way src/Broker/Program.cs does: plaintext HTTP/2 on
// loopback for gRPC, HTTP/1.1 for /healthz, default Kestrel and gRPC limits.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
var grpcPort = builder.Configuration.GetValue("HookBroker:GrpcPort", 5000);
var httpPort = builder.Configuration.GetValue("HookBroker:HttpPort", 5001);
builder.WebHost.ConfigureKestrel(kestrel =>
{
    kestrel.Listen(IPAddress.Loopback, grpcPort, o => o.Protocols = HttpProtocols.Http2);
    kestrel.Listen(IPAddress.Loopback, httpPort, o => o.Protocols = HttpProtocols.Http1);
});
builder.Services.AddGrpc(o => o.EnableDetailedErrors = false);

var app = builder.Build();
app.MapGrpcService<BareHookBrokerService>();
app.MapGet("/healthz", () => Results.Text("ok"));
await app.RunAsync();
