//! A client of the panel as a browser uses it: signed in through the sign-in form, its
//! session cookie kept by the client, the CSRF token read from a page and sent with every
//! write to `/panel/api`.

use serde_json::Value;

use super::check;

pub struct Panel {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    origin: String,
    csrf: String,
}

impl Panel {
    /// Signs in with the form at `POST /panel/sign-in`, follows its redirect to the
    /// segment list as a browser would, and reads the CSRF token from that page.
    pub async fn sign_in(port: u16, email: &str, password: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().cookie_store(true).build()?;
        let origin = format!("http://127.0.0.1:{port}");
        let response = client
            .post(format!("{origin}/panel/sign-in"))
            .form(&[("email", email), ("password", password)])
            .send()
            .await?;
        let landed = response.url().path().to_owned();
        let page = check(response, "sign-in").await?.text().await?;
        anyhow::ensure!(
            landed == "/panel/segments",
            "signing in to the panel landed on {landed}, not the segment list"
        );
        let csrf = csrf_token(&page)
            .ok_or_else(|| anyhow::anyhow!("no CSRF token on the segment list"))?
            .to_owned();
        Ok(Panel {
            client,
            origin,
            csrf,
        })
    }

    /// The same session (its cookie is per host, not per port) on a server that now
    /// listens on `port`.
    pub fn at_port(&self, port: u16) -> Self {
        Panel {
            client: self.client.clone(),
            origin: format!("http://127.0.0.1:{port}"),
            csrf: self.csrf.clone(),
        }
    }

    /// A page's HTML; an error unless it answers 200 without sending to the sign-in page.
    pub async fn page(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.origin);
        let response = self.client.get(&url).send().await?;
        anyhow::ensure!(
            !response.url().path().starts_with("/panel/sign-in"),
            "{url} sent the signed-in client to the sign-in page"
        );
        Ok(check(response, &url).await?.text().await?)
    }

    /// A panel JSON read (`/panel/api/…`).
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.origin);
        let response = self.client.get(&url).send().await?;
        Ok(check(response, &url).await?.json().await?)
    }

    /// A panel JSON write, with the session's CSRF token as the page's script sends it.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.origin);
        let response = self
            .client
            .post(&url)
            .header(crate::panel::session::CSRF_HEADER, &self.csrf)
            .json(body)
            .send()
            .await?;
        Ok(check(response, &url).await?.json().await?)
    }
}

/// The `content` of the page's `<meta name="csrf-token">`.
fn csrf_token(page: &str) -> Option<&str> {
    let marker = "name=\"csrf-token\" content=\"";
    let start = page.find(marker)? + marker.len();
    let len = page[start..].find('"')?;
    Some(&page[start..start + len]).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_read_from_its_meta_tag() {
        let cases = [
            (
                r#"<head><meta name="csrf-token" content="ab12"><title>x</title>"#,
                Some("ab12"),
            ),
            (r#"<meta name="csrf-token" content="">"#, None),
            (r#"<meta name="csrf-token" content="ab12"#, None),
            ("<html></html>", None),
        ];
        for (page, want) in cases {
            assert_eq!(csrf_token(page), want, "{page}");
        }
    }
}
