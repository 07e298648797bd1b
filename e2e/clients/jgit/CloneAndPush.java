// CloneAndPush clones a repository with JGit (Debian's libjgit-java, the
// library under jgit-cli) through an HTTPS proxy, commits a file and pushes
// it back: what a Java program that uses JGit does through azdo-sidecar.
//
// Run with Java's single-file launcher:
//
//	java -cp /usr/share/java/org.eclipse.jgit.jar \
//	    -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=PORT \
//	    -Djdk.http.auth.tunneling.disabledSchemes= \
//	    -Djavax.net.ssl.trustStore=ts.p12 -Djavax.net.ssl.trustStorePassword=changeit \
//	    CloneAndPush.java PROXY_URL_FILE URL DIR
//
// The proxy's credential comes from the sidecar's proxy_url_file (never a
// command-line argument, which other users can read in /proc), and is
// handed out by an Authenticator only to the proxy, for its 407 challenge.
// Java refuses Basic for CONNECT tunnels by default
// (jdk.http.auth.tunneling.disabledSchemes=Basic in net.properties, so that
// a password does not cross the network in clear to a proxy); the sidecar
// listens on loopback, so emptying that list is safe here.
//
// JGit's default HTTP connection (java.net.HttpURLConnection) is used: the
// jgit command line replaces it with Apache HttpClient, which it gives no
// proxy credential at all.

import java.io.File;
import java.net.Authenticator;
import java.net.PasswordAuthentication;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.eclipse.jgit.api.Git;
import org.eclipse.jgit.lib.PersonIdent;
import org.eclipse.jgit.revwalk.RevCommit;
import org.eclipse.jgit.transport.PushResult;
import org.eclipse.jgit.transport.RefSpec;
import org.eclipse.jgit.transport.RemoteRefUpdate;

public class CloneAndPush {
	public static void main(String[] args) throws Exception {
		URI proxy = URI.create(Files.readString(Path.of(args[0])).trim());
		String url = args[1];
		File dir = new File(args[2]);

		String[] userPass = proxy.getRawUserInfo().split(":", 2);
		String user = URLDecoder.decode(userPass[0], StandardCharsets.UTF_8);
		char[] pass = URLDecoder.decode(userPass[1], StandardCharsets.UTF_8).toCharArray();
		Authenticator.setDefault(new Authenticator() {
			@Override
			protected PasswordAuthentication getPasswordAuthentication() {
				// Only the proxy's challenge, never a server's.
				if (getRequestorType() != RequestorType.PROXY
						|| !proxy.getHost().equals(getRequestingHost())
						|| proxy.getPort() != getRequestingPort()) {
					return null;
				}
				return new PasswordAuthentication(user, pass);
			}
		});

		try (Git git = Git.cloneRepository().setURI(url).setDirectory(dir).call()) {
			System.out.println("cloned " + git.getRepository().resolve("HEAD").name());
			Files.writeString(new File(dir, "jgit.txt").toPath(), "written by JGit\n");
			git.add().addFilepattern("jgit.txt").call();
			PersonIdent who = new PersonIdent("JGit", "jgit@example.test");
			RevCommit c = git.commit().setMessage("from JGit").setAuthor(who).setCommitter(who).call();
			for (PushResult r : git.push().setRefSpecs(new RefSpec("refs/heads/main:refs/heads/main")).call()) {
				for (RemoteRefUpdate u : r.getRemoteUpdates()) {
					if (u.getStatus() != RemoteRefUpdate.Status.OK) {
						System.err.println("push " + u.getRemoteName() + ": " + u.getStatus() + " " + u.getMessage());
						System.exit(1);
					}
				}
			}
			System.out.println("pushed " + c.name());
		}
	}
}
